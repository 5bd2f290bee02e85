"""p2phd: pix2pixHD (Wang et al., CVPR 2018) as a fast, dependable command-line toolkit."""

__version__ = "0.1.0"
