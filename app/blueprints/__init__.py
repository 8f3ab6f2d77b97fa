"""One package per feature: the Blueprint, thin routes, forms and the services holding the rules."""
