"""Model inputs built from the tidy series frame as known at an issue instant: calendar (Norwegian
holidays), covariates extended over the horizon, the price anchor, and whole forecast windows."""
