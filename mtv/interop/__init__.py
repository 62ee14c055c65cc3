"""Loading weights made by other code bases (scenic's MTV, image ViTs)."""
