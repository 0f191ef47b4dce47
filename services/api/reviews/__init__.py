"""Service reviews that took place (SPEC §7.3): records with their action items, carried into the
next review of the same scope, and the catalog's review schedule with what is due and overdue."""
