"""The driving command arrives from publishers of every reliability and durability, once per message, and a latched
command published before the node started still reaches the planner (publishers in another DDS participant).
"""
from node_in_process import ClientSide, SpinningNode
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import UInt8

from diffusiondrive_ros.ros.command_input import CommandInput, NewestPerPublisher

RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
LATCHED, VOLATILE = DurabilityPolicy.TRANSIENT_LOCAL, DurabilityPolicy.VOLATILE
# publisher QoS -> how many of the node's two command subscriptions match it (DDS request/offer rules)
PUBLISHER_QOS = {
    (BEST_EFFORT, VOLATILE): 1,
    (RELIABLE, VOLATILE): 1,
    (BEST_EFFORT, LATCHED): 1,
    (RELIABLE, LATCHED): 2,
}
NAMESPACE = "test_command_qos"  # apart from any other planner in the domain
NODE_COMMAND_TOPIC = f"/{NAMESPACE}/diffusiondrive_planner/input/command"
TOPIC = f"/{NAMESPACE}/command"


def info(gid: bytes | None, sequence: int | None, stamp: int = 0) -> dict:
    return {"source_timestamp": stamp, "received_timestamp": stamp, "publication_sequence_number": sequence,
            "reception_sequence_number": None,
            "publisher_gid": None if gid is None else {"implementation_identifier": "rmw", "data": gid}}


def test_duplicates_and_late_copies_of_a_publishers_messages_are_dropped():
    newest = NewestPerPublisher(max_publishers=2)
    assert [newest.is_new(info(b"a", n)) for n in (1, 1, 3, 2, 4)] == [True, False, True, False, True]
    assert newest.is_new(info(b"b", 1))  # another publisher counts its own messages
    assert [newest.is_new(info(b"c", None, stamp)) for stamp in (5, 5, 6)] == [True, False, True]
    assert newest.is_new(info(b"a", 1))  # forgotten: only the two most recent publishers are remembered
    assert [newest.is_new(info(None, 1)) for _ in range(2)] == [True, True]  # no GID: nothing to compare


def qos(reliability, durability) -> QoSProfile:
    return QoSProfile(depth=1, reliability=reliability, durability=durability)


def send_and_receive(side: ClientSide, command_input: CommandInput, received: list, reliability, durability,
                     matches: int, values: list[int]) -> list[int]:
    """Publish `values` from a new publisher of this QoS once it is matched; what arrived by the last one."""
    publisher = side.node.create_publisher(UInt8, TOPIC, qos(reliability, durability))
    side.spin_until(lambda: publisher.get_subscription_count() == matches and command_input.publisher_count() == 1,
                    30, f"{reliability}/{durability} matched")
    start = len(received)
    for value in values:  # one at a time: the subscriptions keep only the newest command (depth 1)
        publisher.publish(UInt8(data=value))
        side.spin_until(lambda sent=value: sent in received[start:], 30, f"{value} from {reliability}/{durability}")
    arrived = received[start:]
    side.node.destroy_publisher(publisher)
    side.spin_until(lambda: command_input.publisher_count() == 0, 30, "the publisher to go")
    return arrived


def test_every_publisher_qos_connects_and_each_command_arrives_once():
    from rclpy.node import Node

    received, holder = [], {}

    def make(context):
        node = Node("command_test", context=context)
        holder["input"] = CommandInput(node, TOPIC, lambda msg: received.append(msg.data))
        return node

    graph = SpinningNode(make)
    side = ClientSide()
    try:
        for index, ((reliability, durability), matches) in enumerate(PUBLISHER_QOS.items()):
            values = [10 * index + n for n in (1, 2, 3)]
            assert send_and_receive(side, holder["input"], received, reliability, durability, matches,
                                    values) == values, f"{reliability}/{durability}"
    finally:
        side.close()
        graph.close()


def command_reaches_the_planner(side: ClientSide, node, publishers: list, command: int) -> None:
    """Publish `command` from the newest publisher once the node has matched all of them; wait for the planner."""
    newest = publishers[-1]
    side.spin_until(lambda: newest.get_subscription_count() > 0
                    and node.command_input.publisher_count() == len(publishers), 30, "the publisher matched")
    newest.publish(UInt8(data=command))
    qos_name = f"{newest.qos_profile.reliability.name}/{newest.qos_profile.durability.name}"
    side.spin_until(lambda: node.pipeline.sync.command == command, 30, f"command {command} from {qos_name}")


def test_the_planner_gets_a_latched_command_sent_before_it_started_and_then_any_publishers():
    from diffusiondrive_ros.ros.node import DiffusionDriveNode

    side = ClientSide()
    try:
        latched = side.node.create_publisher(UInt8, NODE_COMMAND_TOPIC, qos(RELIABLE, LATCHED))
        latched.publish(UInt8(data=2))
        graph = SpinningNode(lambda context: DiffusionDriveNode(context=context, namespace=NAMESPACE),
                             ["--ros-args", "-p", "device:=cpu"])
        try:
            node = graph.node
            side.spin_until(lambda: node.pipeline.sync.command == 2, 30, "the latched command 2")
            publishers = [latched]
            for (reliability, durability), command in zip(PUBLISHER_QOS, (0, 1, 3, 2)):  # each one a change
                publishers.append(side.node.create_publisher(UInt8, NODE_COMMAND_TOPIC, qos(reliability, durability)))
                command_reaches_the_planner(side, node, publishers, command)
        finally:
            graph.close()
    finally:
        side.close()
