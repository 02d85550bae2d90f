"""The hybrid network of the paper's Appendix A in Keras (``model``), trained models on disk as a folder of
weights and a JSON card (``modelfile``), and the device it runs on (``device``). Imports only ``core``; TensorFlow
is imported where a network is built or loaded, not on import of this package."""
