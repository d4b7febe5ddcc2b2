"""Networks, built for the data: DCGAN, StyleGAN2 and the pix2pix U-Net/PatchGAN."""
