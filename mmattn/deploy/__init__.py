"""ONNX export of mmattn detectors and segmentors (``tools/deployment/export_onnx.py``)."""

from .onnx_export import (
    SUPPORTED_OPSETS,
    SegEnd2End,
    build_export_model,
    export_onnx,
    integral_scale_interpolate,
    matrix_adaptive_avg_pool2d,
    run_onnx,
    spread_seg_logits,
    verify_onnx,
)

__all__ = [
    'SUPPORTED_OPSETS',
    'SegEnd2End',
    'build_export_model',
    'export_onnx',
    'integral_scale_interpolate',
    'matrix_adaptive_avg_pool2d',
    'run_onnx',
    'spread_seg_logits',
    'verify_onnx',
]
