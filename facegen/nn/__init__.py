"""Neural-network building blocks shared by facegen models: spiral mesh convolution, mesh pooling, AdaIN."""
from facegen.nn.adain import AdaIN, InstanceNorm, instance_norm
from facegen.nn.spiral import Pool, SpiralBlock, SpiralConv, SpiralResBlock

__all__ = ["AdaIN", "InstanceNorm", "Pool", "SpiralBlock", "SpiralConv", "SpiralResBlock", "instance_norm"]
