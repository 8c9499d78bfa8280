"""The run's curves: every logged point is visible, the legend names the series, axes read as numbers."""
import re

from training.run import charts
from training.evaluation import view as eval_view


def _group(svg: str, gid: str) -> str:
    found = re.search(rf'<g id="{gid}">(.*?)</g>', svg, re.S)
    return found.group(1) if found else ""


def test_a_single_point_is_drawn_as_a_marker_with_its_legend():
    svg = charts.loss_svg([{"step": 1, "loss": 2.5, "elapsed": 1.0}])
    assert _group(svg, "curve-train-loss").count("<use ") == 1
    assert ">train loss<" in svg and "eval loss" not in svg
    assert "0.000000" not in svg and "1.000000" not in svg


def test_three_steps_with_evals_show_both_series_and_whole_step_ticks():
    log = [{"step": s, "loss": 2.0 - 0.1 * s} for s in (1, 2, 3)] + [{"step": 3, "eval_loss": 1.9}]
    svg = charts.loss_svg(log)
    assert _group(svg, "curve-train-loss").count("<use ") == 3
    assert _group(svg, "curve-eval-loss").count("<use ") == 1
    assert ">train loss<" in svg and ">eval loss<" in svg
    ticks = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "1.5" not in ticks and "2.5" not in ticks  # no fractional steps on the x axis


def test_no_points_yet_says_so_and_nan_is_skipped():
    assert "appears here" in charts.loss_svg([])
    assert "appears here" in charts.loss_svg([{"step": 1, "loss": float("nan")}])
    assert "appears here" in charts.lr_svg([{"step": 1, "loss": 2.0}])


def test_side_by_side_escapes_model_output_and_marks_exact_matches():
    long_input = "note " * 100
    html = eval_view.samples_html({"samples": [
        {"prompt": long_input, "reference": '{"a": 1}', "base": "<script>x</script>", "tuned": '{"a": 1}'}]})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<details>" in html and "(show all)" in html  # long input cut, expandable
    assert html.count('class="match"') == 1 and html.count('class="miss"') == 1
    assert eval_view.samples_html(None) == ""


def test_gradient_norm_is_a_series_on_its_own_axis():
    log = [{"step": s, "loss": 2.0 - 0.1 * s, "grad_norm": 0.5 + s} for s in (1, 2, 3)]
    svg = charts.loss_svg(log)
    assert _group(svg, "curve-grad-norm").count("<use ") == 3
    assert ">grad norm<" in svg and ">train loss<" in svg
    assert "curve-grad-norm" not in charts.loss_svg([{"step": 1, "loss": 2.0}])
