"""The seed's Kubeflow Pipelines snippet, as the seed wrote it, with mlflowlet for mlrun.

``mount_pvc`` stands for the seed's ``mount_v3io`` (Iguazio's vendor-specific volume): a claim
holding the scripts, the artifacts and the run DB, mounted at ``/mnt/pipeline`` in every step.
KFP v2 needs type hints on the pipeline's parameters (the seed's KFP v1 did not).

    python -c "from kfp import compiler; import seed_kfp; \
compiler.Compiler().compile(seed_kfp.mlrun_pipeline, 'seed_kfp.yaml')"
"""

import os

from kfp import dsl

from mlflowlet import mlrun_op
from mlflowlet.platforms import mount_pvc

# where the claim is mounted, and what lives on it (overridable to run the steps elsewhere)
mount_path = os.environ.get("SEED_MOUNT", "/mnt/pipeline")
this_path = os.environ.get("SEED_CODE", mount_path + "/examples")
artifacts_path = os.environ.get("SEED_ARTIFACTS", mount_path + "/artifacts")
db_path = os.environ.get("SEED_DB", mount_path + "/db")


# run training using params p1 and p2, generate 2 registered outputs (model, dataset) to be
# listed in the pipeline UI; user can specify the target path per output e.g.
# 'model.txt':'<some-path>', or leave blank to use the default out_path
def mlrun_train(p1, p2):
    return mlrun_op('training',
                    command = this_path + '/training.py',
                    params = {'p1':p1, 'p2':p2},
                    outputs = {'model.txt':'', 'dataset.csv':''},
                    out_path = artifacts_path,
                    rundb = db_path)

# use data (model) from the first step as an input
def mlrun_validate(modelfile):
    return mlrun_op('validation',
                    command = this_path + '/validation.py',
                    inputs = {'model.txt':modelfile},
                    out_path = artifacts_path,
                    rundb = db_path)


@dsl.pipeline(
    name='My MLRUN pipeline',
    description='Shows how to use mlrun.'
)
def mlrun_pipeline(
   p1: int = 5, p2: str = '"text"'
):
    # create a train step, mount the claim holding the code (the seed's mount_v3io)
    train = mlrun_train(p1, p2).apply(mount_pvc('pipeline-claim', 'pipeline', mount_path))

    # feed 1st step results into the secound step
    # Note: the '.' in model.txt must be substituted with '-'
    validate = mlrun_validate(train.outputs['model-txt']).apply(  # noqa: F841
        mount_pvc('pipeline-claim', 'pipeline', mount_path))
