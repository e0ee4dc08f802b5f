"""The parts of the TURN usage (``usages/turn.py``, RFC 6940 section 9):
the TURN-SERVICE Kind and its TurnServer value (:mod:`.kind`), which
addresses may be advertised (:mod:`.addresses`), advertising
(:mod:`.advertiser`), discovery (:mod:`.discovery`) and the usage's
options (:mod:`.options`).  The built-in TURN server itself is
``usages.turnserver``."""

__all__: list[str] = []
