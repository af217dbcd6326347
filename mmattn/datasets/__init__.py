from .shapes import SHAPES_ADE_METAINFO, SHAPES_COCO_METAINFO, make_shapes_ade, make_shapes_coco

__all__ = ['SHAPES_ADE_METAINFO', 'SHAPES_COCO_METAINFO', 'make_shapes_ade', 'make_shapes_coco']
