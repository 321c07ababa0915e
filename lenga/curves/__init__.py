"""Light curves: merging every point of an object (:mod:`~lenga.curves.points`), its ``objects``
statistics (:mod:`~lenga.curves.magstats`) and the packed points the aggregation moves
(:mod:`~lenga.curves.packing`)."""
