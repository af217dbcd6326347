"""mmattn: efficient attention backbones for MMDetection 3.x and MMSegmentation 1.x."""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmattn', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmattn',
    version=read_version(),
    description='Efficient attention backbones (Agent, External, BiFormer, Shunted, FLatten) '
    'for MMDetection and MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmattn', 'mmattn.*']),
    python_requires='>=3.9',
    # torch is deliberately not listed: install it first (pinned), see README. Listing a torch
    # range here lets pip pull the newest CUDA build on a machine that has none.
    install_requires=['mmengine>=0.10.0,<1.0.0', 'mmcv>=2.0.0,<2.2.0', 'numpy'],
    extras_require={
        'det': ['mmdet>=3.3.0,<3.4.0', 'pycocotools'],
        'seg': ['mmsegmentation>=1.2.0,<1.3.0', 'ftfy', 'regex'],
        'tests': ['pytest', 'pytest-timeout', 'ruff'],
    },
    license='Apache License 2.0',
    zip_safe=False,
)
