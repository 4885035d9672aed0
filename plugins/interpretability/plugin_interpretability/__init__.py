"""plugin-interpretability: Captum attributions for any trained kernel run."""
