"""physiodl: deep learning on 1-D physiological signals."""

from physiodl.errors import PhysioDLError
from physiodl.signalset import SignalSet

__version__ = "0.1.0"
__all__ = ["PhysioDLError", "SignalSet", "__version__"]
