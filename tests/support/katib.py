"""Katib's own client side, for the tests of the api.v1.beta1 services.

tests/api/katib_proto/katib_client.proto is an independent copy of Katib's
v1beta1 API. It is compiled at test time with grpc_tools.protoc into a
descriptor set and loaded into a private descriptor pool (trialplane's own
api_pb2 owns the api.v1.beta1 names in the default pool, as the server runs
in-process), and calls go through the channel's generic unary_unary with
the method paths taken from that descriptor, the way a Go or Python client
generated from Katib's file would call.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent.parent / "api" / "katib_proto"
PACKAGE = "api.v1.beta1"


class KatibProto:
    """The compiled copy: its pool, its file and a message class by name."""

    def __init__(self, out_dir: Path):
        out = Path(out_dir) / "katib_client.pb"
        rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}", "katib_client.proto"])
        assert rc == 0, "protoc could not compile katib_client.proto"
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
        self.pool = descriptor_pool.DescriptorPool()
        for file_proto in files.file:
            self.pool.Add(file_proto)
        self.file = files.file[0]
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        """The message class of a name, nested ones dotted ("GetSuggestionsReply.ParameterAssignments")."""
        found = self._classes.get(name)
        if found is None:
            found = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            self._classes[name] = found
        return found

    def enum(self, name: str):
        """An enum descriptor by name ("ParameterType", "TrialStatus.TrialConditionType")."""
        return self.pool.FindEnumTypeByName(f"{PACKAGE}.{name}")

    def value(self, enum_name: str, value_name: str) -> int:
        return self.enum(enum_name).values_by_name[value_name].number

    def service(self, name: str):
        return self.pool.FindServiceByName(f"{PACKAGE}.{name}")

    def calls(self, channel: grpc.Channel, service_name: str) -> dict:
        """One generic unary call per method of the service, by method name."""
        service = self.service(service_name)
        out = {}
        for method in service.methods:
            reply_class = message_factory.GetMessageClass(method.output_type)
            out[method.name] = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=reply_class.FromString,
            )
        return out
