"""fwi-example: the smallest useful fwi-plugins plugin.

One component of each kind, registered in :mod:`fwi_example.plugin`:

* backbone ``tinyunet`` (:mod:`fwi_example.unet`),
* PEFT method ``frozen-encoder`` (:mod:`fwi_example.frozen`),
* dataset ``tiny-layers`` (:mod:`fwi_example.layers`),
* physics ``convolutional`` (:mod:`fwi_example.convolutional`).

Importing this package (or its registration module) does not import torch; the
component modules do, and they are imported only when a component is built.
"""

__version__ = "0.1.0"
