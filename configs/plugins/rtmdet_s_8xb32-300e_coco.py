# Citation: mmattn2026 (BibTeX in configs/plugins/README.md)
# RTMDet-s exactly as MMDetection ships it (COCO, 300 epochs, 8 GPUs x 32 images): the
# baseline of the neck-attention recipes next to it (rtmdet_s_<op>-neck_...).
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'
