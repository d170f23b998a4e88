"""MRML nodes <-> numpy arrays with geometry.  Qt-free: works in Slicer and with slicer-core.

Only node-level APIs are used (no ``slicer.app``, ``slicer.mrmlScene`` or ``slicer.modules``):
every node is created in the scene of the node it derives from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import MedSynthInputError
from .geometry import Geometry, bounding_slices


def _slicer():
    import slicer  # Slicer's Python, or the slicer-core package outside Slicer

    return slicer


def register_segmentation_converters() -> None:
    """Register the segmentation converter rules (Slicer does this at start-up; slicer-core
    does not).  Must run before the first segmentation node is created."""
    slicer = _slicer()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetName() for rule in factory.GetConverterRules()}
    for rule_class in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                       slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
                       slicer.vtkClosedSurfaceToFractionalLabelmapConversionRule,
                       slicer.vtkFractionalLabelmapToClosedSurfaceConversionRule):
        rule = rule_class()
        if rule.GetName() not in registered:
            factory.RegisterConverterRule(rule)


def geometry_of(volume_node) -> Geometry:
    """The node's grid (its own IJK-to-RAS, without parent transforms)."""
    directions = np.zeros((3, 3))
    volume_node.GetIJKToRASDirections(directions)
    return Geometry(np.array(volume_node.GetOrigin()), np.array(volume_node.GetSpacing()), directions)


def check_untransformed(node, role: str) -> None:
    if node.GetParentTransformNode() is not None:
        raise MedSynthInputError(
            f"The {role} '{node.GetName()}' is under a transform; harden the transform "
            "(Data module, right-click > Harden transform) or move it out of the transform first."
        )


def array_of(volume_node) -> np.ndarray:
    """The node's voxels as an ``array[k, j, i]`` view (not copied; never written here)."""
    slicer = _slicer()
    if volume_node.GetImageData() is None:
        raise MedSynthInputError(f"The volume '{volume_node.GetName()}' has no image data; load an image first.")
    components = volume_node.GetImageData().GetNumberOfScalarComponents()
    if components != 1:
        raise MedSynthInputError(
            f"The volume '{volume_node.GetName()}' has {components} components per voxel (colour or vector image); "
            "lesion synthesis needs a scalar volume."
        )
    return slicer.util.arrayFromVolume(volume_node)


@dataclass(frozen=True)
class VolumeBuffer:
    """Voxels made for a volume node: ``image_data`` (a vtkImageData) and ``array``, a writable
    ``[k, j, i]`` view of its scalars.  Fill ``array``, then hand the buffer to ``output_volume``,
    which gives the node this image data as it is: no second volume and no copy."""

    image_data: object
    array: np.ndarray


def volume_buffer(shape: tuple[int, int, int], dtype) -> VolumeBuffer:
    """An uninitialised scalar volume of ``shape`` (k, j, i) and ``dtype``, in VTK's memory."""
    import vtk
    from vtk.util.numpy_support import get_vtk_array_type, vtk_to_numpy

    image_data = vtk.vtkImageData()
    image_data.SetDimensions(int(shape[2]), int(shape[1]), int(shape[0]))
    image_data.AllocateScalars(get_vtk_array_type(np.dtype(dtype)), 1)
    array = vtk_to_numpy(image_data.GetPointData().GetScalars()).reshape(shape)  # keeps the VTK array alive
    return VolumeBuffer(image_data, array)


def _set_array(volume_node, voxels: np.ndarray | VolumeBuffer, geometry: Geometry) -> None:
    slicer = _slicer()
    volume_node.SetOrigin(*geometry.origin)
    volume_node.SetSpacing(*geometry.spacing)
    volume_node.SetIJKToRASDirections(geometry.direction)
    if not isinstance(voxels, VolumeBuffer):
        slicer.util.updateVolumeFromArray(volume_node, np.ascontiguousarray(voxels))
        return
    # the node's image data shares the buffer's scalars (a shallow copy: 2 ms, where handing the
    # node the buffer's image data with SetAndObserveImageData took 200 ms at 37 M voxels), with
    # the notifications that updateVolumeFromArray sends
    if volume_node.GetImageData() is None:
        import vtk

        volume_node.SetAndObserveImageData(vtk.vtkImageData())
    volume_node.GetImageData().ShallowCopy(voxels.image_data)
    volume_node.StorableModified()
    volume_node.Modified()
    volume_node.InvokeEvent(slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent, volume_node)


def output_volume(scene, voxels: np.ndarray | VolumeBuffer, geometry: Geometry, name: str, node=None, like=None):
    """Fill ``node`` (or a new scalar volume) with ``voxels`` (an array, copied; or a
    ``VolumeBuffer``, taken as it is) on ``geometry``; display as ``like``."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    if node.GetDisplayNode() is None:  # before the voxels: made after them, it measured their window (200 ms at 37 M)
        node.CreateDefaultDisplayNodes()
    _set_array(node, voxels, geometry)
    if like is not None and like.GetDisplayNode() is not None and node.GetDisplayNode() is not None:
        source, target = like.GetDisplayNode(), node.GetDisplayNode()
        target.SetAutoWindowLevel(source.GetAutoWindowLevel())
        target.SetWindowLevel(source.GetWindow(), source.GetLevel())
    return node


def segment_array(segmentation_node, segment_id: str, reference_volume) -> np.ndarray:
    """One segment as a uint8 0/1 ``array[k, j, i]`` on the reference volume's grid."""
    slicer = _slicer()
    import vtk

    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment_id) is None:
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        raise MedSynthInputError(
            f"The segmentation '{segmentation_node.GetName()}' has no segment {segment_id!r}; its segments are: "
            f"{', '.join(names) or 'none'}."
        )
    on_grid = _segment_on_volume_grid(segmentation_node, segment_id, reference_volume)
    if on_grid is not None:
        return on_grid
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__medsynth_temp__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, reference_volume):
            raise MedSynthInputError(f"Segment {segment_id!r} could not be exported on the volume's grid.")
        if labelmap.GetImageData() is None:
            return np.zeros(array_of(reference_volume).shape, np.uint8)
        return (slicer.util.arrayFromVolume(labelmap) != 0).view(np.uint8)  # 0/1 bytes, not copied again
    finally:
        scene.RemoveNode(labelmap)


def _segment_on_volume_grid(segmentation_node, segment_id: str, reference_volume) -> np.ndarray | None:
    """The segment as ``segment_array`` gives it, read from its own binary labelmap when that lies
    on the volume's voxel grid (the same voxel-to-world matrix, no transforms: segments made on
    this volume), so that only the segment's box is read (the whole-volume export took 80 ms for
    the liver on a 1 mm CT of 37 M voxels); None when the export is needed."""
    slicer = _slicer()
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    segmentation = segmentation_node.GetSegmentation()
    binary = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    if segmentation_node.GetParentTransformNode() is not None or reference_volume.GetParentTransformNode() is not None \
            or segmentation.GetSourceRepresentationName() != binary or reference_volume.GetImageData() is None:
        return None
    segment = segmentation.GetSegment(segment_id)
    labelmap = segment.GetRepresentation(binary)
    if labelmap is None:
        return None
    grid, volume = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(grid)
    reference_volume.GetIJKToRASMatrix(volume)
    if not np.allclose(slicer.util.arrayFromVTKMatrix(grid), slicer.util.arrayFromVTKMatrix(volume), rtol=0.0, atol=1e-6):
        return None
    shape = tuple(reversed(reference_volume.GetImageData().GetDimensions()))  # (k, j, i)
    out = np.zeros(shape, np.uint8)
    extent = labelmap.GetExtent()  # (i0, i1, j0, j1, k0, k1), inclusive; empty when a stop is below its start
    scalars = labelmap.GetPointData().GetScalars()
    if scalars is None or any(extent[2 * a + 1] < extent[2 * a] for a in range(3)):
        return out
    if scalars.GetNumberOfComponents() != 1:
        return None
    starts = [extent[4], extent[2], extent[0]]  # k, j, i
    sizes = [extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1]
    low = [max(start, 0) for start in starts]
    high = [min(start + size, n) for start, size, n in zip(starts, sizes, shape)]
    if any(h <= lo for lo, h in zip(low, high)):
        return out
    values = vtk_to_numpy(scalars).reshape(sizes)
    inside = tuple(slice(lo - start, h - start) for lo, h, start in zip(low, high, starts))
    out[tuple(slice(lo, h) for lo, h in zip(low, high))] = values[inside] == segment.GetLabelValue()
    return out


def segment_id_by_name_or_id(segmentation_node, name_or_id: str) -> str:
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(name_or_id) is not None:
        return name_or_id
    found = segmentation.GetSegmentIdBySegmentName(name_or_id)
    return found or name_or_id


def fill_segmentation(node, label_arrays: list[tuple], geometry: Geometry, reference_volume) -> None:
    """Replace ``node``'s segments with one segment per (name, 0/1 array on ``geometry``, colour),
    or (name, array, colour, where) for an array that is the block ``where`` (k, j, i slices) of
    the grid, all of the segment lying in it.

    Each segment is given as a binary labelmap of its own bounding box, cut from the array here:
    the work follows the segment's size, not the volume's (a liver and a lesion on a 1 mm CT of
    37 M voxels: about 40 ms against 640 ms when each array went through a whole-volume labelmap
    node and ``ImportLabelmapToSegmentationNode``).  Segments may overlap; an empty array gives an
    empty segment."""
    slicer = _slicer()
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    segmentation = node.GetSegmentation()
    segmentation.RemoveAllSegments()
    segmentation.SetSourceRepresentationName(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    image_to_world = slicer.util.vtkMatrixFromArray(geometry.ijk_to_ras_matrix())
    for name, array, colour, *where in label_arrays:
        segment_id = segmentation.AddEmptySegment("", name)
        segmentation.GetSegment(segment_id).SetColor(*(float(c) for c in colour))  # (given to AddEmptySegment, grey is replaced)
        array = np.asarray(array)
        box = bounding_slices(array, np.zeros(3, int))  # nonzero voxels: any() reads them as True
        if box is None:
            continue
        offset = [w.start for w in where[0]] if where else [0, 0, 0]
        labelmap = slicer.vtkOrientedImageData()
        (k0, k1), (j0, j1), (i0, i1) = ((b.start + o, b.stop + o) for b, o in zip(box, offset))
        labelmap.SetExtent(i0, i1 - 1, j0, j1 - 1, k0, k1 - 1)  # voxel indices of the whole grid
        labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        labelmap.SetImageToWorldMatrix(image_to_world)
        voxels = vtk_to_numpy(labelmap.GetPointData().GetScalars())
        voxels.reshape(k1 - k0, j1 - j0, i1 - i0)[...] = array[box] != 0
        if not slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
                labelmap, node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE, labelmap.GetExtent()):
            raise MedSynthInputError(f"Could not add segment {name!r} to '{node.GetName()}'.")


def fill_table(node, rows: list[dict]) -> None:
    """Replace ``node``'s columns with one row per dict (lists stored as JSON text; an undefined
    number, None, is stored as NaN in a numeric column, never as a made-up value)."""
    import vtk

    node.RemoveAllColumns()
    if not rows:
        return
    table = node.GetTable()
    for key in rows[0]:
        values = [row[key] for row in rows]
        numeric = all((isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None for v in values) \
            and any(v is not None for v in values)
        column = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        column.SetName(key)
        for v in values:
            if numeric:
                column.InsertNextValue(float("nan") if v is None else float(v))
            else:
                column.InsertNextValue(v if isinstance(v, str) else json.dumps(v))
        table.AddColumn(column)
    node.Modified()


def table_rows(node) -> list[dict]:
    """Read a table node back as a list of dicts (numbers as float, text as str)."""
    table = node.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    return [{col.GetName(): col.GetValue(r) for col in columns} for r in range(table.GetNumberOfRows())]
