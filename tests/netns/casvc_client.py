"""Run in a node's netns by test_identity_service.py: one CreateCertificate call to the lab's
identity service over TLS, trusting only the bundle, with the token of a kubeconfig.

argv: ADDRESS KUBECONFIG BUNDLE_PEM_FILE SPIFFE_ID. Prints JSON: {"code", "details",
"chain", "bundle"} (PEM lists)."""

from __future__ import annotations

import json
import sys

import grpc
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.svid.gen import certificate_pb2 as pb
from agent.svid.gen import certificate_pb2_grpc as pb_grpc

HOST = "tulle-controlplane.tulle-system.svc"


def main() -> None:
    address, kubeconfig, bundle_file, spiffe_id = sys.argv[1:5]
    token = yaml.safe_load(open(kubeconfig).read())["users"][0]["user"]["token"]
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=open(bundle_file, "rb").read())
    with grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", HOST)]
    ) as channel:
        stub = pb_grpc.CertificateServiceStub(channel)
        request = pb.CreateCertificateRequest(
            csr=csr.public_bytes(serialization.Encoding.PEM).decode()
        )
        try:
            reply = stub.CreateCertificate(
                request, metadata=[("authorization", f"Bearer {token}")], timeout=10
            )
        except grpc.RpcError as err:
            print(json.dumps({"code": err.code().name, "details": err.details()}))
            return
    print(
        json.dumps(
            {
                "code": "OK",
                "details": "",
                "chain": list(reply.cert_chain),
                "bundle": list(reply.trust_bundle),
            }
        )
    )


if __name__ == "__main__":
    main()
