"""Reading frames in chunks from any frame-indexable stack or file, with read-ahead in the background."""

from ._background import READ_AHEAD_BLOCKS, BlockProducer
from ._source import (
    CHUNK_FRAMES,
    ChannelFrames,
    FileFrames,
    ReadAhead,
    as_frames,
    frame_ranges,
)

__all__ = ["CHUNK_FRAMES", "READ_AHEAD_BLOCKS", "BlockProducer", "ChannelFrames", "FileFrames", "ReadAhead", "as_frames", "frame_ranges"]
