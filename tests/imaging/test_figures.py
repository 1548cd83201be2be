"""The Figure 1 and 2 analogues (analysis.imaging.figures): panel letters as the paper's, legends, titles.

The paper's Figure 1 is lettered A-C (T1, grey-matter mask, segmentation), D (QSM with the thalamic
outline), E-F (pial boundary, segmentation outline); the compendium draws A-C, E-F from the T1 grid
(``figure1_segmentation``) and D from the χ grid (``figure1_qsm``), so no letter may mean two panels.
Drawn on a 4 mm head phantom (a few seconds).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from analysis.imaging import figures  # noqa: E402
from analysis.simulation import phantom_qsm as pq  # noqa: E402


@pytest.fixture(scope="module")
def phantom(head_phantom):
    return head_phantom(4.0, 1)


@pytest.fixture(scope="module")
def images(phantom):
    return pq.phantom_images(phantom)


def _letters(fig):
    """Panel letters (the bold text at the top left of each panel), in panel order."""
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_position() == (0.02, 0.98)]


def _legend_texts(fig):
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_segmentation_figure_letters_titles_and_legend(images):
    fig = figures.figure1_segmentation(images["t1"], images["aseg"], t1_title="synthetic T1-weighted (phantom)")
    assert len(fig.axes) == 5
    assert _letters(fig) == ["A", "B", "C", "E", "F"]
    assert fig.axes[0].get_title().startswith("synthetic T1-weighted (phantom), z = ")
    legend = _legend_texts(fig)
    assert "grey-matter mask (B)" in legend and any(t.startswith("thalamic VOIs") and "(C)" in t for t in legend)
    assert any(t.startswith("D: ") for t in legend)               # where the paper's panel D is
    plt.close(fig)
    fig = figures.figure1_segmentation(images["t1"], images["aseg"], panel_letters="ABCDE", legend=False)
    assert _letters(fig) == list("ABCDE") and not fig.legends
    assert fig.axes[0].get_title().startswith("T1-weighted, z = ")   # the default says nothing about a phantom
    plt.close(fig)
    with pytest.raises(ValueError, match="panel_letters must give 5 letters"):
        figures.figure1_segmentation(images["t1"], images["aseg"], panel_letters="ABC")


def test_qsm_figure_letters_and_legend(phantom, images):
    chi = images["chi"]
    table, rois = pq.phantom_roi_table({"true": chi}, phantom)
    fig = figures.figure1_qsm({"true": chi}, images["aseg"], rois={"true": rois[("true", True)]})
    assert _letters(fig) == ["D"]                                  # a single map: the paper's panel D
    legend = _legend_texts(fig)
    assert len(legend) == 3
    assert legend[0].startswith("thalamic VOI") and "vein" in legend[1] and legend[2].startswith("CSF reference")
    colors = [h.get_color() for h in fig.legends[0].legend_handles]
    assert colors == [figures.THALAMUS_COLOR, figures.VEIN_COLOR, figures.CSF_REFERENCE_COLOR]
    plt.close(fig)
    fig = figures.figure1_qsm({"true": chi, "again": chi}, images["aseg"])
    assert _letters(fig) == ["D1", "D2"]
    assert len(_legend_texts(fig)) == 1                            # no ROIs given: only the VOI outline
    plt.close(fig)
    fig = figures.figure1_qsm({"a": chi}, images["aseg"], panel_letters=["X"], legend=False)
    assert _letters(fig) == ["X"] and not fig.legends
    plt.close(fig)
    with pytest.raises(ValueError, match="non-empty dict"):
        figures.figure1_qsm({}, images["aseg"])
    with pytest.raises(ValueError, match="panel_letters must give 2 letters"):
        figures.figure1_qsm({"a": chi, "b": chi}, images["aseg"], panel_letters="D")


def test_no_letter_names_two_panels_of_figure_1(phantom, images):
    seg = figures.figure1_segmentation(images["t1"], images["aseg"])
    qsm = figures.figure1_qsm({"true": images["chi"], "reconstructed": images["chi"]}, images["aseg"])
    seg_letters, qsm_letters = _letters(seg), _letters(qsm)
    assert not set(seg_letters) & {s[0] for s in qsm_letters}
    plt.close("all")


def test_lesion_figure_says_what_the_flair_is(images):
    fig = figures.figure2_lesions(images["flair"], images["lesions"], flair_title="synthetic FLAIR (phantom)")
    top = [ax.get_title() for ax in fig.axes[: len(fig.axes) // 2]]
    assert top and all(t.startswith("synthetic FLAIR (phantom), z = ") for t in top)
    plt.close(fig)
    fig = figures.figure2_lesions(images["flair"], images["lesions"])
    assert fig.axes[0].get_title().startswith("FLAIR, z = ")
    plt.close(fig)
