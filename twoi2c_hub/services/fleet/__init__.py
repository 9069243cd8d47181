"""The fleet: one operator's view across many hubs. `collect` pulls each hub's people (as
keyed digests) and months (its statement) into the fleet's database
(`accounting.fleet_store`), from which `accounting.fleet` and `accounting.fleet_money`
count people once and split the money."""
