from Algorithmia import ADK


# API calls will begin at the apply() method, with the request body passed as 'input'.
# For more details, see algorithmia.com/developers/algorithm-development/languages
def load(modelData):
    # Runs once, when the algorithm starts. ADK has already checked every file that
    # model_manifest.json requires against its md5 checksum; get_model() gives its local path.
    with open(modelData.get_model("greeting")) as f:  # noqa: PTH123 - Algorithmia-style code
        greeting = f.read().strip()
    return {"greeting": greeting}


def apply(input, globals):
    if not isinstance(input, str):
        raise TypeError("input must be a string, for example 'world'")
    return globals["greeting"] + " " + input


# This turns your library code into an algorithm that can run on the platform.
# If you intend to use loading operations, remember to pass a `load` function as a second
# variable.
algorithm = ADK(apply, load)
# The 'init()' method actually starts the algorithm. You can follow along in the source code
# to see how everything works.
algorithm.init("Algorithmia")
