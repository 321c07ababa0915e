"""ALeRCE's light-curve class hierarchy, on its own: the classifier (inference, in every Spark
worker that classifies) and the simulator (whose models are labelled with these classes) both use
it, and neither should import the other's dependencies to read a constant."""

#: Top-level branch -> its leaf classes (Sánchez-Sáez et al. 2021, AJ 161, 141, fig. 2).
ALERCE_CLASSES: dict[str, tuple[str, ...]] = {
    "Transient": ("SNIa", "SNIbc", "SNII", "SLSN"),
    "Stochastic": ("QSO", "AGN", "Blazar", "CV/Nova", "YSO"),
    "Periodic": ("LPV", "E", "DSCT", "RRL", "CEP", "Periodic-Other"),
}
