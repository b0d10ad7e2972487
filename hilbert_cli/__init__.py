"""hilbert-cli: the HILBERT method (hierarchical audio-text document embeddings) as a command-line tool and library.

    from hilbert_cli import HilbertClassifier, cross_validate
"""
from .device import resolve_device
from .errors import ConfigError, DataError, DeviceError, HilbertError, ModelFileError, NotFittedError
from .evaluation.crossval import CrossValidation, cross_validate
from .learn.classifier import HilbertClassifier
from .learn.config import HilbertConfig, load_config
from .learn.registry import CONFIGURATIONS, LOSSES
from .workspace import Manifest, Segment, SegmentedDoc, Workspace

__version__ = "0.2.0"

__all__ = ["CONFIGURATIONS", "ConfigError", "CrossValidation", "DataError", "DeviceError", "HilbertClassifier",
           "HilbertConfig", "HilbertError", "LOSSES", "Manifest", "ModelFileError", "NotFittedError", "Segment",
           "SegmentedDoc", "Workspace", "__version__", "cross_validate", "load_config", "resolve_device"]
