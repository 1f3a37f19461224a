"""Exact (complete) verification by mixed-integer linear programming, solved with HiGHS.

``get_verifier("milp")`` decides a spec over its whole region with one MILP (or a few); the same
encodings serve as the exact oracle of the tests and the benchmark, and as the last resort of the
crown backend's hybrid mode (``get_verifier("crown", hybrid_milp=True)``), which hands it the boxes
that bound propagation leaves unresolved.

Encodings (one binary per *unstable* hidden unit; stable units are fixed by their bounds)
----------------------------------------------------------------------------------------
Pre-activation bounds ``l <= z <= u`` come from :class:`verifiers.bounds.linear.LinearBounder`
(CROWN intersected with interval propagation, so the tighter of the two per neuron, with a
rounding allowance). For an unstable unit (``l < 0 < u``) with binary ``delta``:

* ReLU: ``h >= z``, ``h >= 0``, ``h <= u delta``, ``h <= z - l (1 - delta)``; ``delta = 1`` forces
  ``h = z >= 0``, ``delta = 0`` forces ``h = 0 >= z``. Stable units: ``h = z`` or ``h = 0``.
* Derivative (forward mode along ``e_i``): ``v_0 = W_0[i]``; ``g_0 = v_0 delta_0`` (a constant
  times a binary: linear); ``v_{k+1} = g_k W_{k+1}`` (linear); for ``k >= 1``, ``g_k = v_k delta_k``
  with sound bounds ``vl <= v_k <= vu`` (from the same LinearBounder) is linearised exactly by
  ``vl delta <= g <= vu delta``, ``v - vu (1 - delta) <= g <= v - vl (1 - delta)``. The objective is
  ``min sign * df/dx_i = sign * g_{L-2} W_{L-1}``. Every feasible point is a pair ``(x, delta)``
  with ``delta`` consistent with the signs of ``z(x)`` (either value where ``z = 0``): the set
  ``S(B)`` of :mod:`verifiers.bounds.linear`, so the optimum is ``min over S(B)`` exactly.
* Difference (tolerance form): ``x`` and ``x' = x + d e_i`` with ``d in [0, hi_i - lo_i]``, two
  weight-tied copies of the ReLU encoding (same bounds: both points lie in the box), objective
  ``min sign * (f(x') - f(x))``. This is exactly the spec: verified iff the minimum is
  ``>= -tolerance``.
* Output bound: one copy, ``min f`` and ``min -f``.

Deciding monotonicity (and the measure-zero kinks)
--------------------------------------------------
*Soundness of VERIFIED.* If ``min over S(B) of sign * D >= -t / W_i`` then the spec holds with
tolerance ``t`` (the argument of :mod:`verifiers.bounds.linear`: the derivative along the
segment is, almost everywhere, ``D`` at a point of ``S(B)``; for ``t = 0`` this is exact
monotonicity). With ``t > 0`` and a negative derivative minimum the difference MILP decides the
spec exactly.

*Counterexamples from a negative derivative minimum.* ``S(B)`` contains *degenerate* patterns: at
a point where some ``z = 0`` the MILP may pick either value of ``delta`` although a nearby segment
along ``e_i`` only ever sees one of them (two units with identical pre-activations, one "on" and
one "off", for instance). A negative ``D`` at such a pattern is not a real slope. Hence the
minimiser ``(x*, delta*)`` is turned into a pair by an LP over the *region of the pattern*
``P = {x in B : z_k(x) >= 0 where delta = 1, <= 0 where delta = 0}`` (a polytope, on which ``f``
is the affine function of the pattern, so ``f(x + d e_i) - f(x) = D(delta*) d`` exactly): maximise
``d`` subject to ``x in P`` and ``x + d e_i in P``. ``d > 0`` gives a true violation of size
``-sign D d``. ``d = 0`` means the pattern is degenerate along ``e_i``; it is excluded by a no-good
cut on the binaries and the MILP is solved again (up to ``max_nogood`` times, then the difference
MILP decides). For tolerance 0, ``min D >= 0`` is therefore necessary and sufficient for
monotonicity over the non-degenerate patterns, and the degenerate ones can never produce a
wrong FALSIFIED (the re-check in the base class is the final judge of every witness anyway).

*Solver tolerances.* HiGHS works in floating point with feasibility tolerances, so a minimum it
reports can be off by about those. A VERIFIED verdict therefore needs the minimum to clear the
spec's threshold by ``abs_tol`` (default ``1e-7``) on the *safe* side: a search with objective
cutoff ``abs_tol - t / W_i`` that finds nothing proves the box. A minimum within ``abs_tol`` of the
threshold (a network that is exactly flat somewhere, say) is left undecided by the MILP rather
than accepted; the sound linear bound tried first proves such boxes when it can.

Options: ``abs_tol`` (see above), ``worst_case`` (default False: stop at the first confirmed
witness, as a VNN-COMP run is scored; True: optimise to the worst derivative and, when the spec is
falsified and time remains, also run the difference MILP for the pair of largest violation; a
witness is called the worst only when that MILP finished), ``max_nogood`` (20), ``threads``
(HiGHS threads, 1), ``mip_rel_gap`` (1e-4).
"""

from verifiers.milp.decide import (
    BoxDecision,
    decide_monotonicity_box,
    decide_output_box,
    pattern_affine,
    segment_in_pattern,
)
from verifiers.milp.encoding import point_pattern
from verifiers.milp.solve import BoxMilp, MilpResult

__all__ = [
    "BoxDecision",
    "BoxMilp",
    "MilpResult",
    "decide_monotonicity_box",
    "decide_output_box",
    "pattern_affine",
    "point_pattern",
    "segment_in_pattern",
]
