-- Issue 14: a handle is one live fan's per tenant and platform, through the API and the
-- import alike. The claim is an entry of the import's index (import_fan_keys, 013), written
-- in the same transaction as the fan's events (adapters/postgres/unique_claims.py); its
-- primary key stops a concurrent duplicate. Nothing in the schema changes for that.
--
-- Fans made before: those an import made or indexed already hold their handles' entries;
-- those made through the API since the tenant's last import hold none, and SQL cannot claim
-- for them (the entries are keyed hashes under a key the master key wraps). So this lists
-- the tenants to claim for, and each process's start (adapters/bootstrap.py) claims their
-- fans' handles from the fans read model, oldest fan first, and crosses the tenant off.
--
-- Tenants that already hold duplicates: nothing fails and no fan changes. The oldest fan
-- with the handle holds it; the others keep it as their handle but hold nothing, so a new
-- fan or a rename to that handle is refused naming the holder, an import row with it
-- updates the holder, and editing the others (their handle aside) works as before.
CREATE TABLE handle_claims_backfill (tenant_id text PRIMARY KEY);

INSERT INTO handle_claims_backfill (tenant_id)
SELECT DISTINCT tenant_id FROM fans WHERE handle IS NOT NULL;
