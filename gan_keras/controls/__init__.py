"""Controllable generation: truncation, interpolation, projection, latent edits, style mixing.

One module per control:

- gan_keras.controls.latent_space: the space controls act in (`ControlSpace`: z, or w
  for a generator with a mapping network) and truncation in it (`truncate`,
  `truncated_images`).
- gan_keras.controls.interpolation: `interpolation_weights` and `slerp`.
- gan_keras.controls.projection: `project`, fitting latents to given images.
- gan_keras.controls.edits: latent edits (`edit`) along SeFa and named directions
  (`build_directions`).
- gan_keras.controls.style_mixing: the StyleGAN2 `style_mix` grid and signature.

The in-graph functions (`truncate`, `slerp`, `interpolation_weights`,
`project`, `edit`) use only TensorFlow ops, so they
run inside ``tf.function`` and the exported SavedModel's signatures (see
gan_keras.export.sampling_model), where Python control flow and Keras optimizers are not
available. Argument checks are ``tf.debugging`` assertions, which fail with
``InvalidArgumentError`` at run time. (Their uint8 conversions are
gan_keras.images' `to_uint8_tensor` / `to_float_tensor`, their PSNR
gan_keras.evaluation.image_scores.psnr_uint8_tensor.)

The edit directions (SeFa's, and named ones such as class directions) are computed once,
eagerly with numpy, when a generator is exported: see gan_keras.controls.edits.

Generators with a mapping network (gan_keras.models.stylegan2) are controlled in w-space
(`ControlSpace`): truncation pulls towards their tracked `w_avg`, projection fits w
(starting from `w_avg`, as StyleGAN2's projector does) and edits move w, along SeFa
directions of the synthesis layers' style weights (SeFa's StyleGAN variant). z -> w is
non-linear, so a straight line in z is a curve in w, and w is where StyleGAN, GANSpace and
SeFa found the disentangled directions. They also get a `style_mix` signature
(`style_mix_images`, `add_style_mix_endpoint`).
"""
