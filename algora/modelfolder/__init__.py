"""What a model folder is, on the client side as on the server: its manifest
(:mod:`.manifest`), the layouts read as one (:mod:`.layouts`, :mod:`.algorithmia`), and its
packing and content hash (:mod:`.packing`). Imports nothing of the server, so the SDK may."""
