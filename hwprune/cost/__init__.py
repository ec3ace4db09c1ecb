"""What a layer costs on a device: loop-nest energy model and mapping search."""
