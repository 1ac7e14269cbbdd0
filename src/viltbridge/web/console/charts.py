"""The attendance timeline as SVG: one bar per learner, their segments on the part's time axis, the scheduled
part shaded, and a line where the policy's threshold is reached for someone present from the start. A learner with
no join/leave times yet shows their launch clicks as ticks instead, and `evidence_note` says in words what the chart
is drawn from. Times are on the viewer's clock. Server-made, no script: it prints, and reads at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from viltbridge.core.attendance import AttendancePolicy, Interval, merge_intervals, presence_within

ROW = 26
LABEL = 220
WIDTH = 900
TOP = 34


@dataclass(frozen=True)
class LearnerBar:
    email: str
    attended: bool | None  # None: no decision yet
    intervals: tuple[Interval, ...]
    launches: tuple[datetime, ...] = ()  # clicks on their launch link


def required_minutes(policy: AttendancePolicy, starts_at: datetime, ends_at: datetime) -> float:
    scheduled = (ends_at - starts_at).total_seconds() / 60
    if policy.min_minutes is not None:
        return float(policy.min_minutes)
    return scheduled * min(policy.min_percent, 100) / 100


def evidence_note(bars: list[LearnerBar]) -> str:
    """What the chart is drawn from, in a sentence (a chart of names without bars otherwise looks broken)."""
    with_times = sum(1 for bar in bars if bar.intervals)
    clicks_only = sum(1 for bar in bars if not bar.intervals and bar.launches)
    if not bars:
        return "No evidence yet: nobody has launched the class or been reported in the meeting."
    if not with_times and clicks_only:
        return ("Launch clicks only: the provider reported no join/leave times yet, so each tick marks a click on "
                "a launch link, not time spent in the meeting.")
    if clicks_only:
        return (f"Join/leave times reported by the provider for {with_times} learner(s); {clicks_only} learner(s) "
                "only launched (ticks mark their clicks).")
    if with_times:
        return "Join/leave times reported by the provider; each bar is time in the meeting."
    return "Decisions without join/leave times or launch clicks (for example an override by an admin)."


def _clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


def timeline_svg(starts_at: datetime, ends_at: datetime, policy: AttendancePolicy, bars: list[LearnerBar],
                 zone: ZoneInfo | None = None) -> str:
    zone = zone or ZoneInfo("UTC")
    here = zone.key  # said in every tooltip: the axis is on the viewer's clock
    axis_start = starts_at - timedelta(minutes=policy.grace_minutes)
    latest = max([ends_at, *(i.end for bar in bars for i in bar.intervals), *(t for bar in bars for t in bar.launches)])
    axis_end = max(ends_at + timedelta(minutes=5), min(latest, ends_at + timedelta(hours=2)))
    span = (axis_end - axis_start).total_seconds()
    plot = WIDTH - LABEL - 10

    def x(moment: datetime) -> float:
        clipped = min(max(moment, axis_start), axis_end)
        return LABEL + plot * (clipped - axis_start).total_seconds() / span

    height = TOP + ROW * max(1, len(bars)) + 24
    threshold_at = starts_at + timedelta(minutes=required_minutes(policy, starts_at, ends_at))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="Attendance timeline" class="attendance-chart" font-family="system-ui,sans-serif" '
        f'font-size="12">',
        f'<rect x="{x(starts_at):.1f}" y="{TOP - 6}" width="{x(ends_at) - x(starts_at):.1f}" '
        f'height="{ROW * max(1, len(bars)) + 6}" fill="#eef2fb"><title>scheduled '
        f'{_clock(starts_at, zone)}-{_clock(ends_at, zone)} {here}</title></rect>',
    ]
    local_start = axis_start.astimezone(zone)  # the grid on the viewer's quarter hours (zones at :30 and :45 too)
    tick = local_start.replace(minute=(local_start.minute // 15) * 15, second=0, microsecond=0).astimezone(UTC)
    while tick <= axis_end:
        if tick >= axis_start and x(tick) < WIDTH - 24:  # no label cut off at the right edge
            parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP - 10}" y2="{height - 20}" '
                         f'stroke="#d9dde4"/><text x="{x(tick):.1f}" y="{TOP - 14}" text-anchor="middle" '
                         f'fill="#5b6474">{_clock(tick, zone)}</text>')
        tick += timedelta(minutes=15)
    for row, bar in enumerate(bars):
        y = TOP + row * ROW
        colour = {True: "#1c7c3c", False: "#a23a2c", None: "#5b6474"}[bar.attended]
        verdict = {True: "attended", False: "not attended", None: "no decision yet"}[bar.attended]
        # Counted as the policy counts: the union (reconnects once), from the grace before the start to the end.
        present = presence_within(bar.intervals, axis_start, ends_at).total_seconds() / 60
        evidence = (f"{present:.0f} min in the meeting" if bar.intervals or not bar.launches
                    else f"launched {len(bar.launches)}x, no join/leave times yet")
        parts.append(f'<g class="learner" data-email="{escape(bar.email)}"><title>{escape(bar.email)}: {verdict}, '
                     f'{evidence}</title>')
        parts.append(f'<text x="{LABEL - 8}" y="{y + 15}" text-anchor="end" fill="{colour}">'
                     f'{escape(bar.email)}</text>')
        for interval in merge_intervals(bar.intervals):
            left, right = x(interval.start), x(interval.end)
            parts.append(f'<rect class="segment" x="{left:.1f}" y="{y + 4}" width="{max(right - left, 1.5):.1f}" '
                         f'height="{ROW - 10}" rx="3" fill="{colour}"><title>{_clock(interval.start, zone)}-'
                         f'{_clock(interval.end, zone)} {here}</title></rect>')
        if not bar.intervals:
            for clicked in bar.launches:
                parts.append(f'<path class="launch" d="M{x(clicked):.1f} {y + 3}v{ROW - 8}" stroke="{colour}" '
                             f'stroke-width="3"><title>launched at {_clock(clicked, zone)} {here}</title></path>')
        parts.append("</g>")
    parts.append(f'<line class="threshold" x1="{x(threshold_at):.1f}" x2="{x(threshold_at):.1f}" y1="{TOP - 8}" '
                 f'y2="{height - 18}" stroke="#2456c4" stroke-dasharray="5 4" stroke-width="1.5"/>'
                 f'<text x="{x(threshold_at):.1f}" y="{height - 6}" text-anchor="middle" fill="#2456c4">threshold: '
                 f'{required_minutes(policy, starts_at, ends_at):.0f} min</text>')
    parts.append("</svg>")
    return "".join(parts)
