"""Songs and samples: cleaning, windows and splits, display names, and the dataset folder built from them."""
