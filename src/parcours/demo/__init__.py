"""The demo: a generated French coffee retailer's customers, fed through the real pipeline."""
