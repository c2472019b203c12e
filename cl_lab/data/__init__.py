"""Task streams: the Task/TaskStream types, the embedded offline benchmark and real streams."""

from .streams import load_stream, stream_names
from .task import OBJECTIVES, Split, Task, TaskStream

__all__ = ["OBJECTIVES", "Split", "Task", "TaskStream", "load_stream", "stream_names"]
