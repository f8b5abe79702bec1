"""The forecasting core: the DeepAR pipeline (`pipeline`), its GluonTS parts (`deepar`) and its
versioned artifact (`artifact`)."""
