# Citation: han2023flatten (BibTeX in configs/flatten/README.md)
# RetinaNet + FPN with FLatten-PVTv2-b4, COCO 1x: the b1 recipe with PVT v2's b4 batch
# (retinanet_pvt_v2_b4_fpn_1x_coco.py; mmdet's retinanet_pvtv2-b4 agrees): 8 GPUs x 1 image
# and lr 1e-4 / 1.4.
_base_ = './retinanet_flatten-pvtv2-b1_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='b4',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/flatten_pvtv2_b4_mmattn.pth'),
    )
)
train_dataloader = dict(batch_size=1, num_workers=1)
optim_wrapper = dict(optimizer=dict(lr=0.0001 / 1.4))
auto_scale_lr = dict(base_batch_size=8)
