"""mmattn: efficient attention backbones for MMDetection 3.x and MMSegmentation 1.x."""

import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# What `mim` and `mmattn::` config paths look for in the installed package (as mmdet ships
# them). In the repository mmattn/.mim/* are symlinks to these (editable installs and plain
# checkouts need nothing more); a wheel gets real copies, made here.
MIM_FILES = ('configs', 'tools', 'demo', 'model-index.yml')


class BuildPyWithMim(build_py):
    """``build_py`` that also copies the configs, tools, demo and model index into
    ``mmattn/.mim`` of the build (symlinks resolved)."""

    def run(self):
        super().run()
        root = osp.dirname(osp.abspath(__file__))
        mim = osp.join(self.build_lib, 'mmattn', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(root, name), osp.join(mim, name)
            if osp.islink(dst) or osp.isfile(dst):
                os.remove(dst)
            elif osp.isdir(dst):
                shutil.rmtree(dst)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            elif osp.isfile(src):
                os.makedirs(mim, exist_ok=True)
                shutil.copyfile(src, dst)


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
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
