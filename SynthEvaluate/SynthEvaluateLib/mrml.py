"""Evaluation results as Slicer nodes: a table per result and ROC curves as a plot chart.
Qt-free; nodes are created in the given scene."""

from __future__ import annotations

from MedSynthCommonLib.mrml import fill_table

from .report import summary_rows


def results_table(scene, result: dict, name: str, node=None):
    """A table node holding the result's summary rows (``node`` is refilled when given)."""
    table = node or scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    fill_table(table, summary_rows(result))
    return table


def roc_chart(scene, curves: dict, name: str):
    """A plot chart with one line per ROC curve (``curves``: label -> {"fpr": [...], "tpr": [...]}).

    Each curve's points live in its own table node (x: 1 - specificity, y: sensitivity).
    """
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.SetTitle(name)
    chart.SetXAxisTitle("1 - specificity")
    chart.SetYAxisTitle("sensitivity")
    for label, curve in curves.items():
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{name} {label} points"))
        fill_table(table, [{"fpr": x, "tpr": y} for x, y in zip(curve["fpr"], curve["tpr"])])
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(f"{name} {label}"))
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("fpr")
        series.SetYColumnName("tpr")
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleNone)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def line_chart(scene, rows: list[dict], x: str, ys: list[str], name: str, x_title: str | None = None,
               y_title: str | None = None, bars: bool = False):
    """A plot chart of columns ``ys`` against ``x`` from flat rows (training curves, metric by
    lesion size...); the rows are kept in a table node that the chart observes."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{name} data"))
    fill_table(table, rows)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    chart.SetTitle(name)
    chart.SetXAxisTitle(x_title or x)
    chart.SetYAxisTitle(y_title or ", ".join(ys))
    for column in ys:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(f"{name} {column}"))
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName(x)
        series.SetYColumnName(column)
        series.SetPlotType(series.PlotTypeBar if bars else series.PlotTypeScatter)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart
