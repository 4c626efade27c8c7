"""What a model looks at: Grad-CAM and Grad-CAM++ (`gradcam`), feature maps (`feature_maps`), and
the layer probing both build on (`probing`: spatial layers, activations with the logits)."""
