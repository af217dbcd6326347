"""Write (or check) the OpenMMLab metafiles (configs/<family>/metafile.yml, model-index.yml) and
the first line of every recipe, which names its paper's BibTeX key.

    python tools/analysis_tools/metafiles.py [--check]

Facts come from the configs, each family's README and the model zoo's params/FLOPs cache
(docs/model_zoo_complexity.json); see mmattn/analysis/metafiles.py. Nothing is traced: after
adding or changing recipes, run tools/analysis_tools/model_zoo.py first. ``--check`` writes
nothing and exits 1 if a file would change (the test suite runs it).
"""

import argparse
import os
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate the model-index metafiles')
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 if a metafile is missing or stale',
    )
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # paths in the metafiles are relative to the repository root
    from mmattn.analysis.metafiles import build_metafiles, citation_files, dump, model_index

    metafiles = build_metafiles()
    n_models = sum(len(content['Models']) for content in metafiles.values())
    files = {path: dump(content) for path, content in metafiles.items()}
    files['model-index.yml'] = model_index(sorted(p for p in files))
    n_meta = len(files) - 1
    files.update(citation_files())  # each recipe's first line names its paper's BibTeX key
    stale = []
    for path, text in files.items():
        old = open(path, encoding='utf-8').read() if osp.isfile(path) else None
        if old == text:
            continue
        stale.append(path)
        if not args.check:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
    if args.check:
        if stale:
            print(
                f'stale: {", ".join(stale)}; run python tools/analysis_tools/metafiles.py',
                file=sys.stderr,
            )
            return 1
        print(f"{n_meta} metafiles and the recipes' citation lines up to date ({n_models} models)")
        return 0
    print(
        f'wrote {len(stale)} of {len(files)} files ({n_meta} families, {n_models} models, '
        f"the recipes' citation lines)"
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
