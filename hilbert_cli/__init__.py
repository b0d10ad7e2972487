"""hilbert-cli: the HILBERT method (hierarchical audio-text document embeddings) as a command-line tool."""
from .errors import HilbertError
from .workspace import Manifest, Segment, SegmentedDoc, Workspace

__version__ = "0.1.0"

__all__ = ["HilbertError", "Manifest", "Segment", "SegmentedDoc", "Workspace", "__version__"]
