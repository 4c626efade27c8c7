"""Hub I/O: what a model folder holds, how sources are named, and downloads from the Hub.

- `layout`: the files of a model or ensemble folder (the Hub repo layout) and reading its config.
- `reference`: "owner/name@revision" and local folders, parsed in one place.
- `download`: a repo snapshot through `huggingface_hub`'s cache, with offline errors that say why.

Publishing (`cifar-push`) lives in `training.push`; loading in `CifarClassifier.from_pretrained`.
"""
