# ADE20K 512x512; expects data/ade/ADEChallengeData2016/{images,annotations}/{training,validation}.
_base_ = 'mmseg::_base_/datasets/ade20k.py'
