"""ZeroGPU as the learner meets it: the daily quota, what a run will ask for, and what a refused
or killed GPU call means, in the learner's words. Plain functions (no torch, no gradio).

What `spaces` does is read from the package (0.51.3, `spaces/zero/client.py`): a call asks for
`duration` seconds, which the client multiplies by the device's `duration_factor` (1.5 on the
RTX PRO 6000 config, 1 on H200) and the scheduler charges against the learner's daily quota
before the call runs (`size="xlarge"`: twice); a call it cannot cover is refused with
"ZeroGPU quota exceeded" and "(Ns requested vs. Ms left). Try again in H:MM:SS."; a worker
still running when its time is up is killed ("ZeroGPU worker error" / "GPU task aborted").
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, fields

from training.run.device import on_zerogpu  # noqa: F401  (re-exported for the views)

# Daily ZeroGPU quotas as of 2026, in seconds, by login state (the scheduler's, not ours).
QUOTAS = (("signed out", 120), ("free account", 300), ("PRO", 2400))
QUOTA_BY_ACCOUNT = dict(QUOTAS)
PRO_MINUTES = 40


def fmt_s(seconds: float) -> str:
    """95 -> "95 s", 150 -> "2 min 30 s", 120 -> "2 min", 7260 -> "2 h 1 min"."""
    s = int(round(seconds))
    if s < 100 and s % 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{m} min {sec} s" if sec else f"{m} min"


def duration_factor() -> float:
    """How many quota seconds one requested second costs on this Space's GPU: `spaces`' own
    config for the device it reads from the driver (1 off ZeroGPU)."""
    if not on_zerogpu():
        return 1.0
    try:
        from spaces.zero import config as zero_config
        return float(zero_config.get_config()["duration_factor"])
    except Exception:  # noqa: BLE001 - the package decides at call time; 1 is its default device's
        return 1.0


def charged_s(requested: int, factor: float | None = None, size: str | None = None) -> int:
    """Quota seconds a call asking for `requested` seconds costs (as `spaces` computes it)."""
    factor = duration_factor() if factor is None else factor
    return round(requested * 2) if size == "xlarge" else round(requested * factor)


def fits_sentence(total: int) -> str:
    """Compare a total of quota seconds with the daily quotas of each login state."""
    for account, quota in QUOTAS:
        if total <= quota:
            if account == "signed out":
                return f"fits the {fmt_s(quota)} a day a signed-out learner has"
            if account == "free account":
                return (f"more than the {fmt_s(QUOTA_BY_ACCOUNT['signed out'])} a signed-out learner has; fits the "
                        f"{fmt_s(quota)} a day of a free Hugging Face account (sign in)")
            return (f"more than a free account's {fmt_s(QUOTA_BY_ACCOUNT['free account'])} a day; fits PRO's "
                    f"{fmt_s(quota)}, or train it over several days (every slice resumes from its checkpoint)")
    return (f"more than even PRO's {fmt_s(QUOTA_BY_ACCOUNT['PRO'])} a day: train it over several days (every "
            "slice resumes from its checkpoint) or on Hugging Face Jobs")


def plan_note(plan: dict, eval_request_s: int | None = None) -> str:
    """The plan's quota paragraph on ZeroGPU ("" elsewhere): what the run asks for in total and
    per slice, in quota seconds, against the daily quotas."""
    if plan.get("where") != "zerogpu" or not plan.get("slice_requests"):
        return ""
    factor = duration_factor()
    charged = [charged_s(r, factor) for r in plan["slice_requests"]]
    total = sum(charged)
    per = (f"{fmt_s(charged[0])} per slice" if len(set(charged)) == 1
           else f"{fmt_s(max(charged))} for the largest slice")
    counted = f" (ZeroGPU counts {factor:g}× each requested second on this GPU)" if factor != 1 else ""
    line = (f"**GPU quota:** this run asks for **{fmt_s(total)} of GPU** in {len(charged)} "
            f"call{'s' if len(charged) != 1 else ''}, {per}{counted}: {fits_sentence(total)}.")
    if eval_request_s:
        line += f" Evaluating it afterwards asks for about {fmt_s(charged_s(eval_request_s, factor))} more."
    return line + (" A slice your quota can't cover today is not lost: the run waits, paused, and "
                   "**Resume** goes on once the quota is back.")


# ------------------------------------------------------------------ what a GPU call ended with

@dataclass(frozen=True)
class GpuOutcome:
    """A GPU call that did not end normally, read from what `spaces` raised."""
    kind: str                  # quota | runs_limit | illegal | queue | unavailable | pending | aborted | worker_error
    requested_s: int | None = None
    left_s: int | None = None
    wait_s: int | None = None
    account: str | None = None  # "signed out" | "free account" | "PRO" | None (not known)
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict) -> "GpuOutcome":
        """From `to_dict` (kept in run.json, possibly with more keys beside)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in names})

    @property
    def refused(self) -> bool:
        """Refused before anything ran (nothing of the run changed)."""
        return self.kind not in ("aborted", "worker_error")


_REQUESTED = re.compile(r"\((\d+)s requested vs\. (-?\d+)s left\)")
_WAIT = re.compile(r"Try again in (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def classify(exc: BaseException) -> GpuOutcome | None:
    """The outcome for an exception from a `spaces.GPU` call; None when it is not ZeroGPU's."""
    title = str(getattr(exc, "title", "") or "")
    message = str(getattr(exc, "message", "") or exc)
    detail = f"{title}: {message}" if title else message
    if type(exc).__name__ == "PicklingError":
        return GpuOutcome("worker_error", detail=f"PicklingError: {message}")
    if not title.startswith("ZeroGPU"):
        return None
    if title == "ZeroGPU worker error":
        return GpuOutcome("aborted" if message == "GPU task aborted" else "worker_error", detail=detail)
    if title == "ZeroGPU illegal duration":
        found = re.search(r"\((\d+)s\)", message)
        return GpuOutcome("illegal", requested_s=int(found.group(1)) if found else None, detail=detail)
    if title == "ZeroGPU queue timeout" or "No GPU was available after" in message:
        return GpuOutcome("queue", detail=detail)
    if title == "ZeroGPU pending credits exceeded":
        return GpuOutcome("pending", detail=detail)
    if title == "ZeroGPU client error":
        return GpuOutcome("unavailable", detail=detail)
    if "runs limit" in message:
        return GpuOutcome("runs_limit", detail=detail)
    account = ("PRO" if "Pro ZeroGPU" in message else "free account" if "free ZeroGPU" in message
               else "signed out" if "your ZeroGPU quota" in message else None)
    found, wait = _REQUESTED.search(message), _WAIT.search(message)
    wait_s = None
    if wait:
        days, h, m, s = (int(g or 0) for g in wait.groups())
        wait_s = days * 86400 + h * 3600 + m * 60 + s
    return GpuOutcome("quota", requested_s=int(found.group(1)) if found else None,
                      left_s=max(0, int(found.group(2))) if found else None, wait_s=wait_s, account=account,
                      detail=detail)


def _resets(wait_s: int | None, now: float | None = None) -> str:
    if wait_s is None:
        return "it comes back within a day (ZeroGPU did not say when)"
    at = time.strftime("%H:%M UTC", time.gmtime((now or time.time()) + wait_s))
    return f"it resets in {fmt_s(wait_s)} (about {at})"


def refusal_markdown(outcome: GpuOutcome | dict, what: str, needs_s: int | None, kept: str,
                     cpu_choice: str, jobs: bool = True) -> str:
    """The learner's message for a refused GPU call: what the step needs, what is left if known,
    when it resets, and the choices. `what`: "slice 2 of this run", "this evaluation"...;
    `kept`: what is safe ("Your run is paused at step 3 of 6 with its checkpoint.");
    `cpu_choice`: the sentence offering the CPU ("" for none)."""
    o = GpuOutcome.from_dict(outcome) if isinstance(outcome, dict) else outcome
    needs = o.requested_s or needs_s
    if o.kind == "quota":
        head = f"**ZeroGPU refused {what}: not enough GPU quota left today.**"
        facts = [f"It needs {fmt_s(needs)} of GPU" if needs else "It needs more GPU time than you have left"]
        facts.append(f"you have {fmt_s(o.left_s)} left" if o.left_s is not None
                     else "how much you have left was not said")
        body = "; ".join(facts) + f", and {_resets(o.wait_s)}."
    elif o.kind == "runs_limit":
        head = f"**ZeroGPU refused {what}: you have started too many GPU tasks today.**"
        body = f"It needs {fmt_s(needs)} of GPU; {_resets(o.wait_s)}." if needs else _resets(o.wait_s).capitalize() + "."
    elif o.kind == "illegal":
        head = f"**ZeroGPU refused {what}: it asked for longer than one GPU call may last.**"
        body = (f"It asked for {fmt_s(needs)}, " if needs else "It asked for ") + "more than ZeroGPU allows for one call."
        body += (" Evaluate fewer examples." if "evaluation" in what else
                 " This Space's FTLAB_MAX_GPU_DURATION is set higher than ZeroGPU allows (its owner can lower it).")
    elif o.kind in ("queue", "unavailable", "pending"):
        head = f"**No ZeroGPU GPU was free for {what}.**"
        body = ("Every GPU of the shared pool was busy" + (f" (it needs {fmt_s(needs)})" if needs else "")
                + "; nothing was charged for a call that never ran. Try again in a minute; signed-in learners "
                  "queue ahead of signed-out ones.")
    else:
        head = f"**ZeroGPU refused {what}.**"
        body = o.detail
    choices = []
    if o.kind in ("quota", "runs_limit", "queue"):
        if o.account == "PRO":
            choices.append("**Add credits** to your Hugging Face account to keep using ZeroGPU past the "
                           f"{PRO_MINUTES} min of PRO.")
        elif o.account == "free account":
            choices.append(f"**Subscribe to PRO** for {PRO_MINUTES} min of ZeroGPU a day (a free account has "
                           f"{fmt_s(QUOTA_BY_ACCOUNT['free account'])}).")
        else:
            choices.append("**Sign in** to huggingface.co in this browser (or create a free account): signed-in "
                           f"learners get {fmt_s(QUOTA_BY_ACCOUNT['free account'])} a day, PRO {PRO_MINUTES} min.")
    if cpu_choice:
        choices.append(cpu_choice)
    if jobs:
        choices.append("**Run it on Hugging Face Jobs**: the *Run on Hugging Face Jobs* panel below trains this "
                       "run's recipe on hardware you pick, paid by the minute.")
    choices.append("Or wait, and press **Resume** once your quota is back: it goes on from where it is."
                   if "run" in what else "Or wait and try again once your quota is back.")
    return "\n\n".join([head, f"{body} {kept}".strip(), "Your choices:\n" + "\n".join(f"- {c}" for c in choices)])


def short_refusal(outcome: GpuOutcome, what: str, needs_s: int | None) -> str:
    """One or two sentences (for a chat reply): why ZeroGPU did not run it, and what to do."""
    needs = outcome.requested_s or needs_s
    if outcome.kind == "quota":
        left = f"you have {fmt_s(outcome.left_s)} left" if outcome.left_s is not None else "your quota is spent"
        return (f"(ZeroGPU refused {what}: it needs {fmt_s(needs) if needs else 'GPU time'} of GPU and {left}; "
                f"{_resets(outcome.wait_s)}. Signed-in learners get {fmt_s(QUOTA_BY_ACCOUNT['free account'])} a day. "
                "Your message is back in the box.)")
    if outcome.kind == "aborted":
        return (f"(ZeroGPU ended {what}'s GPU call before it finished. Your message is back in the box: send it "
                "again, or ask for a shorter answer.)")
    if outcome.kind in ("queue", "unavailable", "pending"):
        return f"(No ZeroGPU GPU was free for {what}. Your message is back in the box: try again in a minute.)"
    return f"(The GPU call for {what} failed: {outcome.detail[:160]}. Your message is back in the box.)"


def killed_sentence(slice_no: int, limit_s: int, elapsed_s: float, last_step: int, checkpoint_step: int,
                    total_steps: int | None = None) -> str:
    """One sentence for a slice whose worker ZeroGPU ended (or that died) before it saved."""
    lost = max(0, last_step - checkpoint_step)
    redo = (f"so {lost} step{'s' if lost != 1 else ''} after it will be trained again" if lost
            else "so nothing is trained twice")
    if elapsed_s >= limit_s - 2:
        why = f"ZeroGPU ended slice {slice_no} at its {fmt_s(limit_s)} limit"
    else:
        why = f"The GPU worker of slice {slice_no} died after {fmt_s(elapsed_s)} (out of memory, or it crashed)"
    when = ("while it saved the last step" if total_steps and last_step >= total_steps
            else f"during step {last_step + 1}")
    return f"{why} {when}; the run goes on from its checkpoint at step {checkpoint_step}, {redo}."
