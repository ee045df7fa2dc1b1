"""Reading frames in chunks from any frame-indexable stack or file, with read-ahead in the background."""

from ._background import BlockProducer
from ._source import ChannelFrames, FileFrames, ReadAhead, as_frames, frame_ranges

__all__ = ["BlockProducer", "ChannelFrames", "FileFrames", "ReadAhead", "as_frames", "frame_ranges"]
