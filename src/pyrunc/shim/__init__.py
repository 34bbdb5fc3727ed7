"""containerd-shim-pyrunc-v1: a containerd v2 shim that runs pyrunc in-process.

Modules (each imported only by the code that needs it):
  protobuf  the protobuf wire codec and the Message base class
  messages  containerd's Task service, event and runc option messages
  ttrpc     ttrpc framing, server and client (containerd's shim transport)
  service   the Task service table served by the shim
  process   the shim's process model: socket address, start, delete, serve
  events    the events publisher (Forward to containerd)
  main      the command line (`containerd-shim-pyrunc-v1`)
"""
