"""Sound bounds of ``f`` and of its derivative over boxes: intervals (``interval``) and linear
relaxations (``linear``), behind the :class:`BoundResult` contract of the search engine."""
