"""The OnlyFans gateway: an HTTP client in the shape of the common third-party API providers,
a simulator with the same contract, and the HMAC signing of their webhooks."""
