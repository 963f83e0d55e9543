"""The embedding map: its 2-D layout, colour fields, selections, alignment and table export."""
