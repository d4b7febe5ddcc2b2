"""Training: the GAN and image-to-image models (`train_step`), losses and augmentation."""
