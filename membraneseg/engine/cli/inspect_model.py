"""``membraneseg inspect-model``: load a model folder (checksum, network, weights) and print its card."""
import json

from .options import compute_options


def add(sub):
    p = sub.add_parser("inspect-model", help="load a model folder (checksum, network, weights) and print its card",
                       description="Exits with status 2 and the reason when the folder is missing, corrupt, or "
                                   "its weights do not fit the network its card describes.")
    p.add_argument("model", nargs="?", metavar="PATH", help="model folder (default: the default model)")
    compute_options(p)
    p.set_defaults(func=run)


def run(args):
    from ..network import model as net
    from ..network import modelfile
    keras_model, card = modelfile.load(args.model or modelfile.default_model_path())
    summary = {k: v for k, v in card.to_dict().items() if k != "provenance"}
    summary["parameters"] = net.count_params(keras_model)
    summary["gflop_per_patch"] = round(net.flops_per_patch(keras_model) / 1e9, 3)
    print(json.dumps(summary, indent=1, sort_keys=True))
