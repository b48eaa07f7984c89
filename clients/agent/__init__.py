"""The sidecar agent (`trialplane agent`): runs a trial's training command,
or follows one that runs beside it, and reports its state, worker, heartbeats
and output to the server. runner.py is where to start reading.

Nothing is imported here, so the command line can build its parser without
loading grpc."""
