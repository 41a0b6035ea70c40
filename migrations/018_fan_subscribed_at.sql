-- The day a fan first subscribed, as an import's "subscribed"/"joined" column or the API
-- gives it (domain/fan.py). Fans created before have none.
ALTER TABLE fans ADD COLUMN subscribed_at date;
