"""videotune: fine-tune and evaluate video- and image-language models.

This folder is the distribution's root package: each tool lives in a subfolder
(`videotune.prep`, `videotune.train`, ...) and shared code in `core/` (`videotune.core`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("videotune")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
